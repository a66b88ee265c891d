"""EGRerank (Huzhang et al., "AliExpress Learning-To-Rank: Maximizing Online Model Performance
without Going Online", arXiv 2003.11941 / TKDE 2023), after LibRerank's EGR_evaluator + PPOModel."""

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.fields import SCORE
from recbole_dnr.model.generative import NEG_INF, GenerativeReranker, gather_lists, mlp, pointer_decode
from recbole_dnr.options import integer, integers, number
from recbole_dnr.registry import register_model


def lstm_cell(cell, x, state=None):
    """``nn.LSTMCell`` ``cell``'s step, written out (its fused op exports to ONNX only with a fixed
    batch): new (h, c), each ``[B, H]``; gates in torch's order i, f, g, o."""
    H = cell.hidden_size
    if state is None:
        state = (x.new_zeros(x.shape[0], H), x.new_zeros(x.shape[0], H))
    h, c = state
    gates = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
    i, f, g, o = (gates[:, j * H:(j + 1) * H] for j in range(4))
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


@register_model
class EGRerank(GenerativeReranker):
    """An evaluator learns the clicks of logged lists; a pointer-decoder generator learns, by PPO,
    the k = ``slate_size`` lists the frozen evaluator rates best.

    - Evaluator (θ, the ``ListBackbone``): token = e_i + PV(history) (+ x, ``score_fusion``), a
      forward GRU over the list in its given order, h_i = ReLU(LN(W [token_i; GRU_i])) ``[B, n, D]``,
      then the shared head: the per-candidate click logit s ``[B, n]``, trained with BCE (L_direct)
      on the logged lists in retriever order (``egr_evaluator_epochs`` epochs).
    - Generator (φ, ``self.generator``): features f_i = the evaluator's head input
      ``score_feature.late(h_i, x)`` (frozen), a per-item MLP encoder (``egr_encoder_layers``), an
      LSTMCell decoder (``egr_decoder_hidden``) fed the item chosen at the previous step, and a
      pointer MLP (``egr_pointer_layers``) over [enc_i; state] → one logit per candidate; chosen
      items and padding are masked at every step (:func:`pointer_decode`), k steps.
    - PPO (generator epochs, evaluator frozen and in eval mode): each list is copied ``egr_rep``
      times (``repeat_interleave``), a trajectory is sampled per copy, reward r_t = σ(evaluator
      logit of the item at slot t, the GRU reading the generated prefix), return
      R_t = r_t + γ R_{t+1} (``egr_gamma``), advantage = R_t standardised over the copies of the same
      list; loss = −mean min(ρÂ, clip(ρ, 1 ± ε)Â) − c·H(π) (``egr_clip``, ``egr_entropy_weight``),
      ρ = π_θ/π_old with π_θ re-evaluated on the sampled trajectory (ρ = 1 before the step).
    - ``predict``: greedy decoding of the k; the rest ordered by s (``sequence_scores``). Before the
      generator is trained (the evaluator epochs) ``predict`` is s itself.

    x is read only through ``score_feature``: by the evaluator (its tokens with ``early``, its head
    with ``late``/``weight``) and by the generator through f_i (the same ``late`` form; with
    ``early`` through h). DNR would perturb the evaluator's BCE scorer; ``DNR_EGRerank`` is refused
    (``registry.get_backbone``) because DNR's trainer does not run the generator's PPO phase.

    Differs from LibRerank: k decode steps (not all n); greedy evaluation (LibRerank samples);
    the decoder's teacher forcing uses the sampled trajectory (LibRerank feeds the initial order);
    copies by ``repeat_interleave`` (LibRerank's ``repeat_data`` scrambles 3-D features); padding is
    never generated; no uniform-random exploration batches (``sample_val``); LayerNorm instead of
    the never-updated BatchNorm; the generator reads the evaluator's list-aware features (LibRerank:
    a per-item MLP on raw features); personalised tokens (PV); the paper's discriminator is absent
    (as in LibRerank).
    """

    uses_position = False  # the GRU reads the order; slots of a generated list are not retriever positions
    trainer_name = "EGRerankTrainer"
    options = {
        "egr_evaluator_epochs": integer("EGRerank's evaluator epochs before its generator's `epochs`", 1),
        "egr_rep": integer("EGRerank's sampled trajectories per list (>= 2: the advantage is relative to the copies)",
                           2),
        "egr_gamma": number("EGRerank's reward discount γ in [0, 1]", 0, 1),
        "egr_clip": number("EGRerank's PPO ratio clip ε in (0, 1)", 0, 1, open_lo=True, open_hi=True),
        "egr_entropy_weight": number("EGRerank's entropy bonus, >= 0", 0),
        "egr_generator_learning_rate": number("EGRerank's generator step size, > 0", 0, open_lo=True),
        "egr_generator_weight_decay": number("EGRerank's generator L2, >= 0", 0),
        "egr_encoder_layers": integers("EGRerank's generator encoder widths", 1),
        "egr_decoder_hidden": integer("EGRerank's generator LSTMCell width", 1),
        "egr_pointer_layers": integers("EGRerank's pointer MLP widths", 1),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.hidden_size
        self.list_gru = nn.GRU(d, d, batch_first=True)
        self.context = nn.Sequential(nn.Linear(2 * d, d), nn.LayerNorm(d), nn.ReLU())
        enc, ptr, dec = config["egr_encoder_layers"], config["egr_pointer_layers"], config["egr_decoder_hidden"]
        self.generator = nn.ModuleDict({
            "encoder": mlp([d, *enc]),
            "decoder": nn.LSTMCell(enc[-1], dec),
            "pointer_item": nn.Linear(enc[-1], ptr[0]),
            "pointer_state": nn.Linear(dec, ptr[0], bias=False),
            "pointer": nn.Sequential(nn.ReLU(), mlp([*ptr, 1], last_activation=False)),
        })
        self.register_buffer("generator_on", torch.tensor(False))  # set by the trainer; saved with the weights
        self.rep, self.gamma = config["egr_rep"], config["egr_gamma"]
        self.clip, self.entropy_weight = config["egr_clip"], config["egr_entropy_weight"]

    # ------------------------------------------------------------------ evaluator
    def encode_list(self, tokens):
        g, _ = self.list_gru(tokens)
        return self.context(torch.cat([tokens, g], -1))

    def theta_parameters(self):
        """The evaluator's parameters (the generator has its own optimizer, ``EGRerankTrainer``)."""
        gen = {id(p) for p in self.generator.parameters()}
        return [p for p in self.parameters() if id(p) not in gen]

    def candidate_features(self, interaction):
        """(evaluator logits s ``[B, n]``, generator features f ``[B, n, D]``) of the retriever-order list."""
        x = interaction[SCORE]
        h = self.encode(interaction, x)
        return self.head_logits(h, x), self.score_feature.late(h, x)

    def sequence_rewards(self, interaction, seq):
        """σ(evaluator logits) ``[B·G, k]`` of the lists ``seq [B, G, k]``, each read in its order."""
        return torch.sigmoid(self.forward(gather_lists(interaction, seq, self.ITEM_ID)))

    @contextlib.contextmanager
    def evaluator_frozen(self):
        """The evaluator in eval mode (no dropout in rewards and features), the generator as it was."""
        was = self.training
        self.train(False)
        self.generator.train(was)
        try:
            yield
        finally:
            self.train(was)

    # ------------------------------------------------------------------ generator
    def stepper(self, f, copies=1):
        """``step_logits(r, chosen)`` for :func:`pointer_decode` over features f ``[B, n, D]`` (each
        list ``copies`` times: ``[B·copies, n]`` logits): the decoder reads the item chosen at step
        r − 1 (zeros at r = 0) and keeps its state."""
        gen = self.generator
        enc = gen["encoder"](f).repeat_interleave(copies, 0)
        item_part = gen["pointer_item"](enc)
        state = []

        def step(r, chosen):
            if r == 0:
                inp = enc.new_zeros(enc.shape[0], enc.shape[-1])
            else:
                inp = enc.gather(1, chosen[:, r - 1, None, None].expand(-1, 1, enc.shape[-1])).squeeze(1)
            state[:] = lstm_cell(gen["decoder"], inp, state or None)
            return gen["pointer"](item_part + gen["pointer_state"](state[0]).unsqueeze(1)).squeeze(-1)

        return step

    def policy(self, f, valid, seq, copies=1):
        """log π(seq_r | seq_<r) ``[B', k]`` and the step entropies ``[B', k]``, the decoder fed ``seq``
        itself (``B' = B·copies`` rows of ``valid`` and ``seq``)."""
        step, taken = self.stepper(f, copies), ~valid
        logps, entropies = [], []
        for r in range(seq.shape[1]):
            logp = F.log_softmax(step(r, seq).masked_fill(taken, NEG_INF), dim=-1)
            entropies.append(-(logp.exp() * logp.masked_fill(taken, 0.0)).sum(-1))
            logps.append(logp.gather(1, seq[:, r, None]).squeeze(1))
            taken = taken | (torch.arange(taken.shape[1], device=seq.device) == seq[:, r, None])
        return torch.stack(logps, 1), torch.stack(entropies, 1)

    def advantages(self, rewards):
        """Returns R_t = r_t + γ R_{t+1} standardised over the copies of each list: ``[B, G, k] -> [B, G, k]``."""
        returns, ahead = [], torch.zeros_like(rewards[..., 0])
        for t in reversed(range(rewards.shape[-1])):
            ahead = rewards[..., t] + self.gamma * ahead
            returns.append(ahead)
        R = torch.stack(returns[::-1], -1)
        std = R.std(1, keepdim=True, unbiased=False)
        return (R - R.mean(1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))

    def generator_loss(self, interaction):
        """PPO's clipped objective on ``egr_rep`` sampled trajectories per list, minus the entropy bonus."""
        B, k, G = interaction[SCORE].shape[0], self.k, self.rep
        valid = (interaction[self.ITEM_ID] > 0).repeat_interleave(G, 0)
        with torch.no_grad(), self.evaluator_frozen():
            f = self.candidate_features(interaction)[1]
            seq, old = pointer_decode(self.stepper(f, G), k, valid, sample=True)
            adv = self.advantages(self.sequence_rewards(interaction, seq.view(B, G, k)).view(B, G, k)).view(B * G, k)
        new, entropy = self.policy(f, valid, seq, G)
        ratio = (new - old).exp()
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - self.clip, 1 + self.clip) * adv)
        return -surrogate.mean() - self.entropy_weight * entropy.mean()

    # ------------------------------------------------------------------ scoring
    def choose(self, interaction):
        """(evaluator logits s ``[B, n]``, the k decoded candidate indices ``[B, k]``; greedy unless training)."""
        s, f = self.candidate_features(interaction)
        seq, _ = pointer_decode(self.stepper(f), self.k, interaction[self.ITEM_ID] > 0, sample=self.training)
        return s, seq

    def score(self, interaction):
        if not bool(self.generator_on):  # evaluator epochs: the generator is still untrained
            return self.forward(interaction)
        return super().score(interaction)
