"""Security rules shared by every stage: URL validation, file types, file names, redaction."""
