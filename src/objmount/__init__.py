"""objmount: object storage as first-class POSIX file storage."""

__version__ = "0.1.0"
