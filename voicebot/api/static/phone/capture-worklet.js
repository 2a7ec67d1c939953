// Microphone capture for the softphone and the agent desktop, on the audio thread.
//
// The server wants 16-bit mono PCM at 16 kHz; the AudioContext runs at the device rate
// (48000 usually, 44100 on some machines). This processor low-passes, then resamples by
// area averaging (each output sample is the mean of the input over its 1/16000 s window,
// with fractional weights at the edges), which works for any ratio, integer or not.
// It posts 20 ms Int16 chunks, plus their level for the meter, to the main thread.

const TARGET_RATE = 16000;
const CHUNK_SAMPLES = TARGET_RATE / 50; // 20 ms
const EPSILON = 1e-9;

// A second-order Butterworth low-pass (RBJ cookbook). The averaging alone leaks a lot of
// energy above 8 kHz back into the band as aliasing; this takes most of it out first.
function lowPassCoefficients(cutoff, sampleRate) {
  const w0 = (2 * Math.PI * cutoff) / sampleRate;
  const alpha = Math.sin(w0) / (2 * Math.SQRT1_2);
  const cos = Math.cos(w0);
  const a0 = 1 + alpha;
  return {
    b0: (1 - cos) / 2 / a0,
    b1: (1 - cos) / a0,
    b2: (1 - cos) / 2 / a0,
    a1: (-2 * cos) / a0,
    a2: (1 - alpha) / a0,
  };
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the AudioWorkletGlobalScope's: the context's rate.
    this.ratio = sampleRate / TARGET_RATE; // input samples per output sample
    // Only filter when actually decimating; at 16 kHz or below there is nothing to remove.
    this.filter = this.ratio > 1 ? lowPassCoefficients(0.45 * TARGET_RATE, sampleRate) : null;
    this.x1 = 0; this.x2 = 0; this.y1 = 0; this.y2 = 0;
    this.sum = 0;       // weighted sum of input in the current output window
    this.filled = 0;    // input time (in input samples) already in the window
    this.chunk = new Int16Array(CHUNK_SAMPLES);
    this.chunkLength = 0;
    this.peak = 0;
  }

  lowPass(x) {
    const f = this.filter;
    if (f === null) return x;
    const y = f.b0 * x + f.b1 * this.x1 + f.b2 * this.x2 - f.a1 * this.y1 - f.a2 * this.y2;
    this.x2 = this.x1; this.x1 = x;
    this.y2 = this.y1; this.y1 = y;
    return y;
  }

  // Spreads one input sample (one unit of input time) over the output windows it covers.
  // Usually it lands in one window, or straddles two; when upsampling it can fill several.
  addSample(x) {
    let left = 1;
    while (left > EPSILON) {
      const take = Math.min(left, this.ratio - this.filled);
      this.sum += x * take;
      this.filled += take;
      left -= take;
      if (this.filled >= this.ratio - EPSILON) {
        this.emit(this.sum / this.ratio);
        this.sum = 0;
        this.filled = 0;
      }
    }
  }

  emit(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.peak = Math.max(this.peak, Math.abs(clipped));
    this.chunk[this.chunkLength++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.chunkLength === CHUNK_SAMPLES) {
      const pcm = this.chunk;
      // Transfer the buffer rather than copy it; a fresh one takes its place.
      this.port.postMessage({ pcm: pcm.buffer, level: this.peak }, [pcm.buffer]);
      this.chunk = new Int16Array(CHUNK_SAMPLES);
      this.chunkLength = 0;
      this.peak = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      const channels = input.length;
      const frames = input[0].length;
      for (let i = 0; i < frames; i++) {
        // Mixed down to mono, should the browser hand us more than one channel.
        let x = 0;
        for (let c = 0; c < channels; c++) x += input[c][i];
        this.addSample(this.lowPass(x / channels));
      }
    }
    return true; // keep running while the call is up, even through silent (empty) quanta
  }
}

registerProcessor("capture-processor", CaptureProcessor);
