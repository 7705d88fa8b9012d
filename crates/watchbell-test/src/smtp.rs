//! A loopback SMTP server that records every mail.
