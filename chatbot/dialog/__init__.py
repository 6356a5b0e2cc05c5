"""The dialog: what the bot says to a customer's message, given what the session remembers.

The state machine is `machine` (its diagram `machine.mmd`, its carry-over rules
`frames`); a message read on its own is `dispatch`; the answers live in one
module per topic:

- `tracking`: a package by its code, or the writer's own packages;
- `package_in_view`: the session's packages: when they arrive, where to pick them up;
- `points`: hours, addresses and the map pin of the service points;
- `quote`: shipping prices;
- `delivery_times`: how long a delivery takes;
- `policies`: requirements, unclaimed packages, refunds, payment, the company's FAQ;
- `cases`: complaints, not understanding, a person, waiting for one;
- `courtesy`: greetings, thanks, goodbye and the rating, opting out.

`turn` is one message being answered; `store` keeps the session in Redis.
"""
