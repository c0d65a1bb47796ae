"""Development and testing tools around the servers; not part of the production image."""
