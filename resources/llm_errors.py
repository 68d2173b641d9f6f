"""What the call layer raises: failed calls (never cached), and the reasons a batch ends early."""


class LLMCallError(RuntimeError):
    """Calls that still failed after the last retry; their answers are not cached."""


class StructuredOutputUnsupported(LLMCallError):
    """The server rejected the request's response_format (it has no structured output)."""


class EndpointUnreachable(LLMCallError):
    """Calls in a row could not connect to the endpoint at all: the batch ended early, nothing more sent."""


class MissingAPIKey(LLMCallError):
    """The endpoint needs a key and none is set: refused before anything is sent."""


class Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class NoConnection(Retryable):
    """Nothing reached the server (refused, no route, name not resolved, reset): unlike a timeout or a 5xx,
    the same on every call of a dead endpoint."""


class Stopped(Exception):
    """A call not sent, or a retry not made, because its batch stopped."""
