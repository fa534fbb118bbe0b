"""Accounts: sign up, log in and out, change password; learners and instructors."""
