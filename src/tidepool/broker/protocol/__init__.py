"""Sans-I/O Kafka wire protocol: frames → typed requests (kio entities) → typed responses → bytes.

Nothing here opens a socket or a file; the server feeds bytes in and writes bytes out.
"""
