//! A fake of the Slack API (being written).
