"""The inference engine used by Chapters 15-19: a Llama-architecture decoder with random weights at real sizes,
a paged KV cache, continuous batching with chunked prefill, a prefix cache, a load generator and serving metrics
(see README.md)."""
