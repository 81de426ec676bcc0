"""Sharing and coming back: referral links and show reminders."""
