//! Loopback syslog receivers: UDP, TCP and unix sockets.
