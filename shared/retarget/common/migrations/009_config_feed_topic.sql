-- Which change feed a version was written for. published_at is one flag per version: when two
-- deployments share a database (two topic prefixes — as every stack of the test suite does),
-- one's relay took the other's crashed write, published it to its own topic and marked it
-- published, and the writer's own feed never got it. A relay now takes only its own topic's
-- versions (and those written before this column, NULL, as before).
ALTER TABLE config_versions ADD COLUMN feed_topic text;
