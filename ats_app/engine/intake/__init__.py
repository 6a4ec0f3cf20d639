"""The webhook: receiving an alert (validate with `execution.signals`, persist, answer, enqueue
its job by name) and the link cache the answer reads. Sits above `execution`: the job it
enqueues runs in a worker, so the webhook process never imports the broker stack. May import
`execution` and below.
"""
