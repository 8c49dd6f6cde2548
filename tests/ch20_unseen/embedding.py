"""An nn.Embedding lookup of int64 indices from torch.randint: the indices must reach the model unchanged."""
import torch
from torch import nn

batch_size = 8
seq_len = 12
num_embeddings = 50
embedding_dim = 16


class Model(nn.Module):
    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)

    def forward(self, idx):
        return self.embedding(idx)


def get_inputs():
    return [torch.randint(0, num_embeddings, (batch_size, seq_len))]


def get_init_inputs():
    return [num_embeddings, embedding_dim]
