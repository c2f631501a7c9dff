"""retarget.ingest: the front door. Speaks Segment's HTTP Tracking API, validates events and
publishes them to the events topic, answering only once Kafka has acknowledged them."""
