"""Modality-shared language prompts: per-identity learnable words in a CLIP template.

The template (CLIP-ReID's "A photo of a X X X X person.") is tokenised once; the
run of "X" tokens is replaced by learnable context vectors, one set per training
identity and the same for both modalities. The frozen text tower turns each
identity's prompt into its text feature; only the context vectors learn. A
generic prompt (one shared set of context vectors) serves SD's label-injection
variant at test time.
"""
import torch
import torch.nn as nn

__all__ = ['PromptLearner', 'DEFAULT_TEMPLATE']

DEFAULT_TEMPLATE = 'A photo of a X X X X person.'


class PromptLearner(nn.Module):
    """Context vectors ``ctx`` (num_classes, n_ctx, width) between fixed template words.

    The sequence is cut after the end-of-text token (``TextTower`` explains why
    that changes nothing), so the text tower runs on ~12 tokens instead of 77.
    """

    def __init__(self, num_classes, text_tower, tokenizer, template=DEFAULT_TEMPLATE,
                 generic=False, init_std=0.02):
        super().__init__()
        ids = tokenizer([template])[0]
        x_id = tokenizer(['X'])[0, 1]
        slots = (ids == x_id).nonzero().flatten()
        if len(slots) == 0 or (slots[1:] - slots[:-1] != 1).any():
            raise ValueError('prompt template {!r} needs one run of "X" words (the learnable '
                             'context)'.format(template))
        eot = int(ids.argmax())
        embeds = text_tower.embed_tokens(ids[None, :eot + 1])
        start, end = int(slots[0]), int(slots[-1]) + 1
        self.template = template
        self.n_ctx = end - start
        self.eot = eot
        self.register_buffer('prefix', embeds[:, :start].clone())
        self.register_buffer('suffix', embeds[:, end:].clone())
        width = embeds.shape[-1]
        self.ctx = nn.Parameter(torch.randn(num_classes, self.n_ctx, width) * init_std)
        self.generic_ctx = (nn.Parameter(torch.randn(1, self.n_ctx, width) * init_std)
                            if generic else None)

    @property
    def num_classes(self):
        return self.ctx.shape[0]

    def embeddings(self, ctx):
        """(N, n_ctx, width) context vectors -> (N, L, width) prompt token embeddings."""
        n = ctx.shape[0]
        return torch.cat([self.prefix.expand(n, -1, -1).to(ctx.dtype), ctx,
                          self.suffix.expand(n, -1, -1).to(ctx.dtype)], 1)

    def encode(self, text_tower, ctx):
        eot = torch.full((ctx.shape[0],), self.eot, dtype=torch.long, device=ctx.device)
        return text_tower.encode_embeddings(self.embeddings(ctx), eot)

    def forward(self, text_tower, labels=None):
        """Text features (num_classes or len(labels), dim) of the identity prompts."""
        ctx = self.ctx if labels is None else self.ctx[labels]
        return self.encode(text_tower, ctx)

    def generic(self, text_tower):
        """(1, dim) text feature of the generic prompt."""
        if self.generic_ctx is None:
            raise RuntimeError('this prompt learner has no generic prompt')
        return self.encode(text_tower, self.generic_ctx)

    def extra_repr(self):
        return 'template={!r}, identities={}, n_ctx={}'.format(
            self.template, self.num_classes, self.n_ctx)
