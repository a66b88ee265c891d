"""CoRRTrainer: trains the retriever and the ranker of :class:`~recbole_dnr.model.corr.CoRR`
together, and evaluates the two-stage result.

Training iterates over the training requests that have a liked item in their label window
(one batch = ``train_batch_size`` requests), summing (``corr_mode: joint``) or alternating
(``alternating``: ``corr_alternate_epochs`` epochs of retriever, then as many of ranker) the
ranker's and the retriever's losses. Every evaluation (valid each epoch, test at the end)
first retrieves each request's top-n anew with the current retriever, then reranks with the
ranker, so early stopping selects the best *two-stage* model; the result adds the retriever's
own recall@n and NDCG@n of the window positives and the AUC of its score over the lists it retrieved.
"""

from recbole.data.interaction import Interaction

from recbole_dnr.data.dataloader import ListDataLoader
from recbole_dnr.evaluator.retrieval import retriever_means
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, REQUEST_ID
from recbole_dnr.model.corr import PRIOR_HI, PRIOR_LO, WINDOW_POSITIVE
from recbole_dnr.trainer.dnr_trainer import DNRSchedule
from recbole_dnr.trainer.list_trainer import ListTrainer


class CoRRTrainer(ListTrainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.mode = config["corr_mode"]
        self.alternate = config["corr_alternate_epochs"]
        # ranker DNR_X: DNR's phases and generator φ steps, on the lists CoRR sampled for the θ step
        self.dnr_schedule = DNRSchedule(config, model.ranker, self.logger, self.sync_gradients) if model.is_dnr else None
        if self.mode == "alternating" and config["stopping_step"] <= self.alternate:
            self.logger.warning(f"corr_mode alternating with stopping_step {config['stopping_step']} <= "
                                f"corr_alternate_epochs {self.alternate}: early stopping may end a run inside the "
                                "first phase, before the other side has trained")

    def _build_optimizer(self, **kwargs):
        if "params" in kwargs:
            return super()._build_optimizer(**kwargs)
        groups = [{"params": list(self.model.ranker.theta_parameters())},
                  {"params": list(self.model.retriever.parameters()),
                   "lr": self.config["corr_retriever_learning_rate"] or self.config["learning_rate"]}]
        return super()._build_optimizer(params=groups, **kwargs)

    @staticmethod
    def training_requests(split):
        """The training requests as CoRR's units: user, history, the label window's liked items and
        the user's prior log rows; requests without a liked item are left out."""
        ids = split.inter[REQUEST_ID]
        pos = split.window_positives(ids.numpy())
        keep = (pos > 0).any(1)
        lo, hi = split.prior_rows(ids.numpy())
        fields = {split.uid_field: split.inter[split.uid_field], HISTORY_ITEM: split.inter[HISTORY_ITEM],
                  HISTORY_LABEL: split.inter[HISTORY_LABEL], HISTORY_LEN: split.inter[HISTORY_LEN],
                  REQUEST_ID: ids, WINDOW_POSITIVE: pos, PRIOR_LO: lo, PRIOR_HI: hi}
        return split.view(Interaction({k: v[keep] for k, v in fields.items()}), "train")

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        units = ListDataLoader(self.config, self.training_requests(train_data.requests),
                               self.config["train_batch_size"], shuffle=True)
        self.logger.info(f"CoRR: {len(units.requests)} training requests with a liked item in their label window "
                         f"(of {len(train_data.requests)}), mode {self.mode}, ranker {self.config['ranker']}")
        return super().fit(units, valid_data, verbose, saved, show_progress, callback_fn)

    def phase_for(self, epoch_idx):
        if self.mode == "joint":
            return "joint"
        # retriever first (the authors start with the ranker): from scratch, a ranker trained first would
        # rank a random retriever's lists, and early stopping would judge (and could end) that pair
        return "retriever" if (epoch_idx // self.alternate) % 2 == 0 else "ranker"

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.model.corr_phase = self.phase_for(epoch_idx)
        if self.dnr_schedule:
            self.dnr_schedule.start_epoch(epoch_idx)
        return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)

    def _after_theta_step(self, interaction, epoch_idx):
        if self.dnr_schedule and self.model.corr_phase != "retriever":
            # an empty part of a distributed batch sampled no lists: φ's step still joins the sum
            self.dnr_schedule.after_theta_step(self.model.last_lists if len(interaction) else interaction)

    def _extra_state(self):
        return self.dnr_schedule.state() if self.dnr_schedule else {}

    def _load_extra_state(self, checkpoint):
        if self.dnr_schedule:
            self.dnr_schedule.load_state(checkpoint, self.start_epoch)

    def eval_lists(self, eval_data):
        """``eval_data``'s requests with lists retrieved by the current retriever."""
        split = eval_data.requests
        fresh = split.lists.retrieve_split(split, self.model.retriever.embeddings())
        return ListDataLoader(self.config, fresh, self.config["eval_batch_size"])

    def extend_result(self, result, eval_data):
        result.update(retriever_means(eval_data.requests.retriever_metrics))
        return result
