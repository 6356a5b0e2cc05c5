"""The conversation: what the bot answers to each customer message."""
