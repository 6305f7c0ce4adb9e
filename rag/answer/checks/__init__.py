"""Checks on a drafted answer: grounding, off-topic guard, question forms, exact quoting, verification, lists."""
