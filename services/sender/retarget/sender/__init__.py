"""retarget.sender: the last gate before an inbox.

Consumes rendered messages from the outbound topic, refuses suppressed recipients, claims
each message id in the send log (so a replay never becomes a second email), delivers over
a pool of reused SMTP connections and publishes every outcome to the deliveries topic.
Deferred messages wait in PostgreSQL and a retry loop re-sends them with backoff.
"""
