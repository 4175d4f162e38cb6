//! Placeholder; the stand-in LLM server is being written.
