//! A fake of the Telegram API (being written).
