// Shared by the softphone and the agent desktop: the calls' audio arrives as 16-bit
// little-endian PCM over a WebSocket, in messages that need not end on a sample boundary.
"use strict";

window.VoicebotPcm = {
  // Int16 LE bytes to floats in [-1, 1]. A message may end mid-sample; that byte is kept on
  // `stream.oddByte` (start it at null) and joined to the next message.
  toFloatSamples(stream, data) {
    let bytes = new Uint8Array(data);
    if (stream.oddByte !== null) {
      const joined = new Uint8Array(bytes.length + 1);
      joined[0] = stream.oddByte;
      joined.set(bytes, 1);
      bytes = joined;
      stream.oddByte = null;
    }
    if (bytes.length % 2 === 1) {
      stream.oddByte = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const samples = new Float32Array(bytes.length / 2);
    for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
    return samples;
  },
};
