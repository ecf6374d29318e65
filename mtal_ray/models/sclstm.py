"""``sclstm``: the shared-cell LSTM encoder (Lu et al., SC-LSTM), stacked and bidirectional.

An SC-LSTM cell is a standard LSTM cell (eq. 1, shared by all tasks) plus one
task-specific output gate per task that reads the shared memory ``c_t``:

.. code-block:: text

    f_t = σ(W_f h_{t-1} + U_f x_t + b_f)       i_t = σ(W_i h_{t-1} + U_i x_t + b_i)
    o_t = σ(W_o h_{t-1} + U_o x_t + b_o)       ĉ_t = tanh(W_c h_{t-1} + U_c x_t + b_c)
    c_t = i_t * ĉ_t + f_t * c_{t-1}            h_t = o_t * tanh(c_t)              (eq. 1)
    o_t^k = σ(W_k q_{t-1}^k + U_k x_t + b_k)   q_t^k = o_t^k * tanh(c_t)          (eq. 2)
    s_t^k = q_t^k ⊕ h_t                                                            (eq. 3)

Task ``k``'s gate parameters only receive gradient from task ``k``'s loss. As in the
paper, layers are stacked and only the top-most layer's task cells are read: lower layers
pass the shared ``h_t`` upwards, so they are plain (bidirectional) LSTMs (``nn.LSTM``, fast);
the top layer runs :class:`SCLSTMCell` in each direction and task ``k``'s features are
``[s_fwd^k; s_bwd^k]`` (width ``2 × 2 × hidden_size``, or ``2 × hidden_size`` one-way).

The LSTM runs over the sub-word sequence of the input encoder:

* ``sclstm.input: transformer`` — the Transformer's last hidden states (fine-tuned, or
  fixed with ``freeze_encoder: true``);
* ``sclstm.input: embeddings`` — only the encoder's input embedding table (plain word-piece
  embeddings, no Transformer layers): a cheap encoder for fast CPU experiments and for
  scoring very large pools.

``nn.Dropout`` modules on the input, between layers and on the output make MC-dropout
scoring work even over a frozen encoder. Config: :class:`mtal_ray.models.sclstm_config.
SCLSTMConfig` (``model.sclstm``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel

from mtal_ray.models.config import ModelConfig

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class SCLSTMCell(nn.Module):
    """One direction of an SC-LSTM layer: a shared LSTM cell and ``n_tasks`` output gates.

    Parameters
    ----------
    input_size, hidden_size
        Widths of ``x_t`` and of ``h_t`` / ``c_t`` / ``q_t^k``.
    n_tasks
        Number of task-specific cells ``K``.

    Attributes
    ----------
    input_weight
        ``Linear(input_size, 4H)``: ``U_f, U_i, U_o, U_c`` (rows in that order) and biases.
    hidden_weight
        ``Linear(H, 4H, bias=False)``: ``W_f, W_i, W_o, W_c``.
    task_input_weight, task_hidden_weight, task_bias
        ``[K, input_size, H]``, ``[K, H, H]``, ``[K, H]``: ``U_k``, ``W_k``, ``b_k`` (row-vector
        convention: ``x_t @ U_k``).
    """

    def __init__(self, input_size: int, hidden_size: int, n_tasks: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.n_tasks = n_tasks
        self.input_weight = nn.Linear(input_size, 4 * hidden_size)
        self.hidden_weight = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        self.task_input_weight = nn.Parameter(torch.empty(n_tasks, input_size, hidden_size))
        self.task_hidden_weight = nn.Parameter(torch.empty(n_tasks, hidden_size, hidden_size))
        self.task_bias = nn.Parameter(torch.empty(n_tasks, hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)  # nn.LSTM's initialisation
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def project_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The input terms of all gates, for any leading shape: ``[..., 4H]``, ``[..., K, H]``.

        Computed once for a whole sequence; :meth:`step` adds the recurrent terms.
        """
        shared = self.input_weight(x)
        task = torch.einsum("...i,kih->...kh", x, self.task_input_weight) + self.task_bias
        return shared, task

    def step(self, shared_x: torch.Tensor, task_x: torch.Tensor, state: State) -> State:
        """One time step from projected inputs; ``state = (h [B,H], c [B,H], q [B,K,H])``."""
        h, c, q = state
        forget, inp, out, cand = (shared_x + self.hidden_weight(h)).chunk(4, dim=-1)
        c = torch.sigmoid(inp) * torch.tanh(cand) + torch.sigmoid(forget) * c
        memory = torch.tanh(c)
        h = torch.sigmoid(out) * memory
        task_gate = torch.sigmoid(task_x + torch.einsum("bkh,khj->bkj", q, self.task_hidden_weight))
        q = task_gate * memory.unsqueeze(1)
        return h, c, q

    def forward(self, x: torch.Tensor, state: State) -> State:
        """Eq. 1-2 for one step: ``x [B, input_size]`` -> ``(h, c, q)``."""
        shared_x, task_x = self.project_input(x)
        return self.step(shared_x, task_x, state)

    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        """Zero ``(h, c, q)`` with ``like``'s dtype and device."""
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros, like.new_zeros(batch, self.n_tasks, self.hidden_size)

    def run(
        self, x: torch.Tensor, mask: torch.Tensor, reverse: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run over ``x [B, T, in]``; returns ``h [B, T, H]`` and ``q [B, T, K, H]``.

        Positions where ``mask [B, T]`` is false keep the previous state, so with right
        padding the backward direction (``reverse``) starts from zeros at each row's end.
        """
        shared_x, task_x = self.project_input(x)
        state = self.initial_state(x.size(0), x)
        hs: list[torch.Tensor] = [x.new_empty(0)] * x.size(1)
        qs: list[torch.Tensor] = [x.new_empty(0)] * x.size(1)
        steps = range(x.size(1) - 1, -1, -1) if reverse else range(x.size(1))
        for t in steps:
            h, c, q = self.step(shared_x[:, t], task_x[:, t], state)
            keep = mask[:, t].unsqueeze(-1)
            state = (
                torch.where(keep, h, state[0]),
                torch.where(keep, c, state[1]),
                torch.where(keep.unsqueeze(-1), q, state[2]),
            )
            hs[t], qs[t] = state[0], state[2]
        return torch.stack(hs, 1), torch.stack(qs, 1)


class SharedCellLSTM(nn.Module):
    """``sclstm`` sharing scheme: input encoder -> LSTM layers -> bidirectional SC-LSTM layer.

    Parameters
    ----------
    encoder
        A Hugging Face encoder; with ``sclstm.input: embeddings`` only its input embedding
        table is kept.
    tasks
        Task names (one task cell per task, in this order).
    config
        ``model`` section (``model.sclstm``).

    Attributes
    ----------
    output_sizes
        Task -> feature width (``directions × 2 × hidden_size``).
    fresh_modules
        Randomly initialised sub-modules (trained at ``training.head_lr``).
    """

    fresh_modules = ("lower", "cells")

    def __init__(self, encoder: PreTrainedModel, tasks: Sequence[str], config: ModelConfig) -> None:
        super().__init__()
        cfg = config.sclstm
        self.tasks = list(tasks)
        self.embeddings_only = cfg.input == "embeddings"
        if self.embeddings_only:
            table = encoder.get_input_embeddings()
            self.encoder: nn.Module = table
            input_size = table.embedding_dim
        else:
            self.encoder = encoder
            input_size = encoder.config.hidden_size
        self.frozen = cfg.freeze_encoder
        if self.frozen:
            self.encoder.requires_grad_(False)
        self.dropout = nn.Dropout(cfg.dropout)
        directions = 2 if cfg.bidirectional else 1
        hidden = cfg.hidden_size
        self.lower = nn.ModuleList(
            nn.LSTM(
                input_size if i == 0 else directions * hidden,
                hidden,
                batch_first=True,
                bidirectional=cfg.bidirectional,
            )
            for i in range(cfg.layers - 1)
        )
        top_input = input_size if cfg.layers == 1 else directions * hidden
        self.cells = nn.ModuleList(
            SCLSTMCell(top_input, hidden, len(self.tasks)) for _ in range(directions)
        )
        self.output_sizes = dict.fromkeys(self.tasks, directions * 2 * hidden)

    def encode_input(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, input_size]`` sub-word vectors from the (possibly frozen) input encoder."""
        context = torch.no_grad() if self.frozen else contextlib.nullcontext()
        with context:
            if self.embeddings_only:
                return self.encoder(input_ids)
            return self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{task: [batch, subwords, width]}``: ``s^k`` of eq. 3 for both directions."""
        mask = attention_mask.bool()
        x = self.dropout(self.encode_input(input_ids, attention_mask))
        total = x.size(1)
        lengths = mask.sum(1).clamp(min=1).cpu()
        for lstm in self.lower:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = lstm(packed)
            x, _ = pad_packed_sequence(out, batch_first=True, total_length=total)
            x = self.dropout(x)
        runs = [cell.run(x, mask, reverse=d == 1) for d, cell in enumerate(self.cells)]
        return {
            task: self.dropout(torch.cat([part for h, q in runs for part in (q[:, :, k], h)], -1))
            for k, task in enumerate(self.tasks)
        }
