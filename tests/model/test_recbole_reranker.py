"""RecBole's models as rerankers: input conversion, equality with RecBole's own scoring, fusion,
config resolution, RecBole's own pipeline for CE models, context-aware (CTR) models, the general
models' caches and history matrices, smoke runs (SASRec, DNR_SASRec, DNR_Caser, DNR_DeepFM, LightGCN, MultiVAE, Pop)."""

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_dnr.config import Config
from recbole_dnr.data.dataset import RequestSet
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, LABEL, SCORE
from recbole_dnr.model.recbole_reranker import recbole_reranker_class
from recbole_dnr.recbole_models import REPRESENTATION_MODELS, recbole_sequence
from recbole_dnr.quick_start import objective_function
from recbole_dnr.errors import ModelType, UserInputError
from recbole_dnr.registry import get_backbone, get_model

from conftest import smoke_config

B, N, H, ITEMS, USERS = 5, 7, 6, 40, 12


class FakeDataset:
    user_num = USERS
    item_num = ITEMS
    uid_field, iid_field = "user_id", "item_id"
    fields = RequestSet.fields  # what context-aware models embed: the real rule, on this fake
    field2type = RequestSet.field2type

    def side_features(self, source):  # none loaded
        return None, {}
    history_item_matrix = RequestSet.history_item_matrix  # from inter_matrix below, as on the real one
    history_user_matrix = RequestSet.history_user_matrix
    inter_feat, inter_num = RequestSet.inter_feat, RequestSet.inter_num
    dataset_path = "/nonexistent"  # LDiffRec reads item embeddings there only when it clusters items
    field2seqlen = {"item_id_list": H}  # CORE's positions

    def num(self, field):
        return USERS if field == "user_id" else ITEMS

    def inter_matrix(self, form="coo", value_field=None):
        import scipy.sparse as sp

        g = np.random.default_rng(0)
        return sp.coo_matrix((np.ones(60), (g.integers(1, USERS, 60), g.integers(1, ITEMS, 60))),
                             shape=(USERS, ITEMS)).tocsr().tocoo().asformat(form)


def config_for(model, **over):
    cfg = {"list_mode": "slate", "score_fusion": "none", "gpu_id": "", "max_history": H, "state": "ERROR"}
    cfg.update(over)
    return Config(model=model, dataset="ml-100k", config_dict=cfg)


def make_batch(seed=0):
    """Left-padded histories of lengths 0..H (newest last), as our lists carry them."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([0, 1, 3, H, H - 1])
    hist = torch.randint(1, ITEMS, (B, H), generator=g)
    hist[torch.arange(H)[None, :] < (H - lengths)[:, None]] = 0
    return Interaction({
        "user_id": torch.randint(1, USERS, (B,), generator=g),
        "item_id": torch.randint(1, ITEMS, (B, N), generator=g),
        SCORE: torch.rand(B, N, generator=g),
        LABEL: (torch.rand(B, N, generator=g) > 0.7).float(),
        HISTORY_ITEM: hist,
        HISTORY_LABEL: torch.randint(0, 2, (B, H), generator=g),
    })


def build(model, **over):
    torch.manual_seed(0)
    config = config_for(model, **over)
    return config.model_class(config, FakeDataset())


def test_recbole_sequence_by_hand():
    hist = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    seq, length = recbole_sequence(hist, window=4)
    assert seq.tolist() == [[3, 4, 5, 0], [2, 3, 4, 5], [0, 0, 0, 0]]
    assert length.tolist() == [3, 4, 1]  # an empty history reads position 0 (padding)
    seq, length = recbole_sequence(hist, window=50)
    assert seq.tolist() == [[3, 4, 5, 0, 0], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]] and length.tolist() == [3, 5, 1]


@pytest.mark.parametrize("name", list(REPRESENTATION_MODELS) + ["BERT4Rec", "BPR", "NeuMF", "LightGCN", "Pop",
                                                                  "MultiVAE", "ENMF", "DMF", "CDAE", "SGL", "DGCF",
                                                                  "LINE", "LDiffRec", "CORE"])
def test_scores_equal_recbole_own_prediction(name):
    """score_fusion none, no fine-tuning: the reranker's score of each candidate is RecBole's own."""
    model = build(name).eval()
    batch = make_batch()
    inter = model.recbole_interaction(batch)
    items = batch["item_id"]
    with torch.no_grad():
        got = model.predict(batch)
        try:
            full = model.model.full_sort_predict(inter).view(B, -1)
            expected = full.gather(1, items)
        except NotImplementedError:  # NeuMF: pointwise predict only
            flat = {k: v.repeat_interleave(N, 0) for k, v in inter.items()}
            flat["item_id"] = items.reshape(-1)
            expected = model.model.predict(flat).view(B, N)
    assert got.shape == (B, N)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["RepeatNet", "SASRecCPR", "GRU4RecCPR"])
def test_probability_models_are_scored_by_their_log_probability(name):
    """Their full_sort_predict is a probability over all items, their loss its NLL: the logit is log p."""
    model = build(name, **({} if name == "RepeatNet" else {"reranker_CAN_NUM": 20})).eval()  # 40 toy items
    batch = make_batch()
    inter = model.recbole_interaction(batch)
    with torch.no_grad():
        got = model.predict(batch)
        if name == "RepeatNet":
            p = model.model.full_sort_predict(inter)
        else:  # their full_sort_predict also computes the loss of a target item, which a list has not
            p = model.model.full_sort_predict({**inter, "item_id": torch.ones(B, dtype=torch.long)})
    torch.testing.assert_close(got, torch.log(p.gather(1, batch["item_id"]) + 1e-8), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["LightGCN", "NGCF", "DMF"])
def test_cached_embeddings_follow_the_weights(name):
    """These models cache their embeddings between calls and clear them in their own calculate_loss."""
    model = build(name, score_fusion="late")
    batch = make_batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):  # the cache held the first step's graph: the second backward went through it again
        opt.zero_grad()
        model.calculate_loss(batch).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        before = model.predict(batch)
        for p in model.parameters():  # as loading the best epoch's checkpoint does
            p.add_(0.1)
    model.eval()  # the trainer switches to eval before each evaluation
    with torch.no_grad():
        after = model.predict(batch)
        model._clear_caches()
        fresh = model.predict(batch)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh)


def test_history_matrices_by_hand():
    import scipy.sparse as sp

    m = sp.csr_matrix(np.array([[0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 0, 1]], dtype=float))  # 3 users x 4 items
    ds = RequestSet.__new__(RequestSet)
    ds.inter_matrix = lambda form="coo", value_field=None: m.asformat(form)
    ids, values, lens = ds.history_item_matrix()
    assert ids.tolist() == [[2, 3], [0, 0], [1, 3]] and lens.tolist() == [2, 0, 2]
    assert values.tolist() == [[1, 1], [0, 0], [1, 1]]
    ids, _, lens = ds.history_item_matrix(max_history_len=1)
    assert ids.tolist() == [[2], [0], [1]] and lens.tolist() == [1, 0, 1]
    ids, _, lens = ds.history_user_matrix()  # items' users: item 0 none, item 1 user 2, item 2 user 0, item 3 both
    assert ids.tolist() == [[0, 0], [2, 0], [0, 0], [0, 2]] and lens.tolist() == [0, 1, 1, 2]
    with pytest.raises(UserInputError, match="0/1 interactions only"):
        ds.history_item_matrix(value_field="rating")
    ds.uid_field, ds.iid_field = "user_id", "item_id"
    assert ds.inter_num == 4 and sorted(zip(ds.inter_feat["user_id"].tolist(), ds.inter_feat["item_id"].tolist())) == [
        (0, 2), (0, 3), (2, 1), (2, 3)]


@pytest.mark.parametrize("name", ["SASRec", "BERT4Rec"])
def test_no_fusion_ignores_x_and_late_uses_it(name):
    batch = make_batch()
    model = build(name).eval()
    permuted = Interaction(dict(batch.interaction))
    permuted.interaction[SCORE] = batch[SCORE].flip(1)
    with torch.no_grad():
        torch.testing.assert_close(model.predict(batch), model.predict(permuted))
        late = build(name, score_fusion="late").eval()
        assert not torch.allclose(late.predict(batch), late.predict(permuted))


def test_early_fusion_moves_the_candidate_embedding_only_for_representation_models():
    model = build("SASRec", score_fusion="early").eval()
    batch = make_batch()
    assert model.encode(batch, batch[SCORE]).shape == (B, N, model.model.item_embedding.embedding_dim)
    with pytest.raises(UserInputError, match="score_fusion: early"):
        build("BERT4Rec", score_fusion="early")


def test_uses_the_history():
    model = build("GRU4Rec").eval()
    batch, other = make_batch(), make_batch(seed=1)
    for key in ("user_id", "item_id", SCORE):
        other.interaction[key] = batch[key]
    with torch.no_grad():
        assert not torch.allclose(model.predict(batch)[2:], model.predict(other)[2:])


def test_config_resolution_and_defaults():
    config = config_for("SASRec")
    assert config.model_class is recbole_reranker_class("SASRec") and config["model"] == "SASRec"
    assert config["MODEL_TYPE"] == ModelType.RERANK
    assert config["hidden_dropout_prob"] == 0.5 and config["n_heads"] == 2  # RecBole's SASRec.yaml
    assert config["hidden_size"] == 64  # RecBole's default beats our backbones' 128
    assert config["MAX_ITEM_LIST_LENGTH"] == H  # capped by the history the lists carry
    assert config_for("Caser")["MAX_ITEM_LIST_LENGTH"] == 5  # Caser's window L (properties/model/Caser.yaml)
    explicit = Config(model="RecBoleReranker", dataset="ml-100k",
                      config_dict={"recbole_model": "GRU4Rec", "gpu_id": "", "state": "ERROR"})
    assert explicit["model"] == "GRU4Rec" and explicit.model_class.recbole_model == "GRU4Rec"
    dnr = config_for("DNR_SASRec")
    assert dnr["recbole_model"] == "SASRec" and dnr["hidden_dropout_prob"] == 0.5 and "lambda_c" in dnr
    assert get_model("SASRec").type != ModelType.RERANK  # no list key: RecBole's own class
    with pytest.raises(UserInputError, match="recbole_model"):
        Config(model="RecBoleReranker", dataset="ml-100k", config_dict={"gpu_id": ""})
    with pytest.raises(UserInputError, match="not a reranker backbone"):
        get_backbone("NoSuchModel")


def test_recbole_ce_model_runs_recbole_pipeline_without_negatives():
    config = Config(model="SASRec", dataset="ml-100k", config_dict={"gpu_id": "", "state": "ERROR"})
    assert config["MODEL_TYPE"] != ModelType.RERANK
    assert config["train_neg_sample_args"]["distribution"] == "none"
    assert any("train_neg_sample_args" in n for n in config.notes)
    with pytest.raises(UserInputError, match="loss_type CE"):
        Config(model="SASRec", dataset="ml-100k", config_dict={
            "gpu_id": "", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}})


# CTR models: BCEWithLogitsLoss (forward is the logit) and BCELoss (DCNV2: forward is a probability)
CONTEXT_MODELS = ["DeepFM", "DCN", "DCNV2", "xDeepFM", "WideDeep", "AutoInt", "FM", "NFM", "PNN", "FiGNN"]


@pytest.mark.parametrize("name", CONTEXT_MODELS)
def test_context_aware_scores_are_the_logits_of_recbole_own_prediction(name):
    """score_fusion none, no fine-tuning: σ(the reranker's score) of each candidate is RecBole's predict
    for that (user, item), and the score reads only the user and the candidate (not the history)."""
    model = build(name).eval()
    assert model.model.token_field_names == ["user_id", "item_id"] and model.model.float_field_names == []
    batch, other = make_batch(), make_batch(seed=1)
    with torch.no_grad():
        got = model.predict(batch)
        flat = {"user_id": batch["user_id"].repeat_interleave(N), "item_id": batch["item_id"].reshape(-1)}
        expected = model.model.predict(flat).view(B, N)
        for key in ("user_id", "item_id", SCORE):
            other.interaction[key] = batch[key]
        torch.testing.assert_close(model.predict(other), got)
    assert got.shape == (B, N)
    torch.testing.assert_close(torch.sigmoid(got), expected, rtol=1e-5, atol=1e-5)


def test_a_context_aware_reranker_says_what_it_reads():
    assert any("DeepFM is a context-aware (CTR) model: it reranks from the user and item ids only" in n
               for n in config_for("DeepFM").notes)
    assert not any("context-aware" in n for n in config_for("SASRec").notes)


def test_request_fields_are_the_ids_only(slice_root, in_session_dir):
    from recbole.utils import FeatureSource as S

    from recbole_dnr.data import create_dataset, data_preparation

    config = Config(config_dict=smoke_config(slice_root, model="DeepFM", list_mode="slate"))
    ds = create_dataset(config)
    train = data_preparation(config, ds)[0].dataset
    assert train.fields(source=[S.INTERACTION, S.USER, S.USER_ID, S.ITEM, S.ITEM_ID]) == ["user_id", "item_id"]
    assert train.fields(source=[S.INTERACTION]) == []  # the rating and the time are the label: never features
    assert train.fields(source=[S.ITEM_ID]) == ["item_id"] and train.num("item_id") == ds.item_num


def test_models_needing_item_features_are_a_clear_error():
    with pytest.raises(UserInputError, match="cannot be built as a reranker"):
        build("FDSA")


@pytest.mark.parametrize("model", ["SASRec", "DNR_SASRec", "DNR_Caser", "DNR_DeepFM", "LightGCN", "MultiVAE", "Pop"])
def test_smoke_recbole_rerankers(slice_root, in_session_dir, model):
    cfg = smoke_config(slice_root, model=model, list_mode="slate", epochs=2, lambda_e=1)
    result = objective_function(cfg, saved=False)
    ndcg = result["test_result"]["ndcg@6"]
    assert 0.0 < ndcg <= 1.0


def test_pretraining_sequences_stay_in_the_training_period(slice_root, in_session_dir):
    from recbole_dnr.data import create_dataset, data_preparation
    from recbole_dnr import protocol
    from recbole_dnr.trainer.recbole_pretrain import training_sequences

    config = Config(config_dict=smoke_config(slice_root, model="SASRec", list_mode="slate"))
    ds = create_dataset(config)
    data_preparation(config, ds)
    users, hist, targets = training_sequences(ds, 4)
    _, log_users, items, _, _ = ds.log_arrays()
    starts, splits, _ = protocol.cut_requests(log_users, 6, config["valid_slates"], config["test_slates"])
    allowed = protocol.training_rows(log_users, starts, splits)
    rows = np.flatnonzero(allowed)
    rows = rows[rows > protocol.user_bounds(log_users)[log_users[rows]]]
    assert np.array_equal(targets, items[rows]) and np.array_equal(users, log_users[rows])
    r = 5  # a target: its sequence is the up-to-4 items just before it, same user, oldest first
    prev = [i for i in range(rows[r] - 1, rows[r] - 5, -1) if i >= 0 and log_users[i] == users[r]][::-1]
    assert hist[r][hist[r] > 0].tolist() == items[prev].tolist()
    assert not allowed[starts[splits != protocol.TRAIN]].any()  # no valid/test slate row is a target
    graph = ds.training_matrix("csr")  # LightGCN's graph: the training period only, binary
    assert graph.nnz == len(set(zip(log_users[allowed].tolist(), items[allowed].tolist())))
    held = starts[splits != protocol.TRAIN]
    assert all(graph[log_users[r], items[r]] == 0 for r in held[:50]
               if not ((log_users[allowed] == log_users[r]) & (items[allowed] == items[r])).any())


def test_pretraining_runs_and_refuses_what_it_cannot_do(slice_root, in_session_dir):
    cfg = smoke_config(slice_root, model="DNR_SASRec", list_mode="slate", epochs=1, recbole_pretrain=True,
                       recbole_pretrain_epochs=1)
    assert 0 < objective_function(cfg, saved=False)["test_result"]["ndcg@6"] <= 1
    with pytest.raises(UserInputError, match="recbole_pretrain supports"):
        objective_function(smoke_config(slice_root, model="BPR", list_mode="slate", epochs=1,
                                        recbole_pretrain=True), saved=False)
