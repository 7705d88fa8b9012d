//! Loopback fakes of Twilio's and Exotel's SMS APIs.
