"""Security rules shared by every stage (SPEC §9, DECISIONS "Security and robustness").

``urls`` (allow-list / SSRF), ``filetypes`` (extensions, Content-Types, the URL file-name rule),
``filenames`` (sanitising), ``presigned`` (link expiry), ``redact`` (secrets out of text).
"""
