"""The account lifecycle: email verification, password reset and change, email change."""
