"""Errors a user can act on; every interface turns them into a one-line message."""


class QAError(Exception):
    """Base class: the message is shown to the user as it is."""


class IndexMissing(QAError):
    """No index has been built at the given folder."""


class IndexInvalid(QAError):
    """The index exists but cannot be used (damaged, older format, other model)."""


class NoDocuments(QAError):
    """Nothing readable was found in the sources."""


class IndexBusy(QAError):
    """Another process is building the same index."""


class InvalidRequest(QAError):
    """The question, history or top_k the caller gave cannot be used."""


class PageUnavailable(QAError):
    """A PDF page that cannot be shown; ``code`` says why (unknown_source, no_pages,
    unknown_page, source_changed, unreadable, invalid_request)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
