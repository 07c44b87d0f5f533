"""Training and evaluating the span reader; never imported when answering."""
