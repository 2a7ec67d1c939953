"""The built-in queues (ACD): calls wait for agents with the right skills, by priority and time
waited; offers, wrap-up, overflow, callbacks; the estimated wait (Erlang C); events between
API nodes. See docs/desktop.md."""
