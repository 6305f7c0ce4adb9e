"""What the tool remembers of its users: saved conversations and feedback."""
