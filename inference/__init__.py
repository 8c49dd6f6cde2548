"""The inference engine used by Chapters 15-19: a Llama-architecture decoder with random weights at real sizes."""
