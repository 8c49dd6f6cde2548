"""Wrong: looks up the next row."""
from torch import nn


class ModelNew(nn.Module):
    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)

    def forward(self, idx):
        return self.embedding((idx + 1) % self.embedding.num_embeddings)
