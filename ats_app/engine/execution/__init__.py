"""Turning signals into orders, exactly once: the entry job (`entry.handle_alert`), one
order to the broker (`submit`: SUBMITTING first, reconcile on an unknown outcome, never
resend), the exit job (`exit_order`), the order store and its state machine steps, positions,
order updates, recovery of lost jobs and the kill action (`halt`). Also the alert message's
schema (`signals`, pure): what the webhook validates and the job parses. May import `risk`
and below.
"""
