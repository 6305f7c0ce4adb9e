"""Text helpers every stage shares: sentence splitting, word tokens, word lists, citation markers."""
