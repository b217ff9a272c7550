"""MFA with TOTP: enroll, confirm, verify a pending sign-in, recovery codes, disable.

See `service.py` for what is stored and how (the TOTP secret encrypted at rest, recovery codes
as keyed hashes) and `AuthService.sign_in` for the gate every way in passes.
"""
