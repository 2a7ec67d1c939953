"""Phone lines: making LiveKit's SIP service send calls to the voicebot agent."""
