"""Agent assist: what the knowledge base suggests while an agent talks or chats with a customer.

- :mod:`voicebot.assist.suggest`: passages and suggested replies for one customer line
  (extractive offline; written by the configured model when there is one).
- :mod:`voicebot.assist.transcript`: the caller's live transcript on a voice call held by an
  agent (the bot's recogniser over the caller's audio), published on the queue's event bus.
- :mod:`voicebot.assist.hub`: on the API node of the agent's desktop, each customer line is
  sent there with its suggestions.
"""
