"""Proactive notifications: core events to WhatsApp messages."""
