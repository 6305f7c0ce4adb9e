"""The answer path: follow-ups, context, the prompt, the reply, citations and the checks behind abstention."""
