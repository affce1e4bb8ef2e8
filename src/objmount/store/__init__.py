"""Object stores behind one protocol: S3 (botocore + obstore) and in-memory."""

from objmount.store.base import Account, ObjectInfo, ObjectStore, ListResult

__all__ = ["Account", "ListResult", "ObjectInfo", "ObjectStore"]
