"""WhatsApp channels: Meta Cloud API and Twilio, inbound parsing and outbound sending."""
