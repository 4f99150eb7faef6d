"""The study's settings, judged before anything is loaded: one clear line per mistake, exit status 2."""

from __future__ import annotations

from gmv.errors import GmvError



def check_config(cfg) -> None:
    """Settings that can be judged without data: fail before anything is loaded."""
    from omegaconf import OmegaConf

    from gmv.tracking import MODES
    from gmv.valuation.matchers import DISTANCES, KINDS

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise GmvError(f"required setting(s) {', '.join(missing)} not given; pass them as overrides, e.g. "
                       f"`{missing[0]}=…`" + (" (the npz path for data.source)" if "data.source" in missing else ""))
    v = cfg.valuation
    if not isinstance(v.k, int) or v.k < 1:
        raise GmvError(f"valuation.k must be an integer ≥ 1, got {v.k!r}")
    from gmv.valuation.value import check_target, check_tau

    try:
        check_tau(v.tau)
        check_target(v.target_top_credit)
    except GmvError as e:
        raise GmvError(f"valuation: {e}") from None
    if not isinstance(v.reference_size, int) or v.reference_size < 0:
        raise GmvError(f"valuation.reference_size must be an integer ≥ 0, got {v.reference_size!r}")
    report_class = v.get("report_class")
    if report_class is not None and (isinstance(report_class, bool) or not isinstance(report_class, int)):
        raise GmvError(f"valuation.report_class must be a class label (an integer) or null, got {report_class!r}")
    if v.distance not in DISTANCES:
        raise GmvError(f"valuation.distance must be one of {', '.join(DISTANCES)}, got {v.distance!r}")
    if cfg.matcher.kind not in KINDS:
        raise GmvError(f"unknown matcher kind {cfg.matcher.kind!r}; choose matcher={'|'.join(KINDS)}")
    engine = v.get("engine", "local")
    from gmv.valuation.ray_cluster import check_engine, require_ray

    check_engine(engine)
    if engine == "ray":
        require_ray()  # a missing Ray fails here, before any training
    if cfg.logger.mode not in MODES:
        raise GmvError(f"logger.mode must be one of {', '.join(MODES)}, got {cfg.logger.mode!r}")
    from gmv.config_utils import plain
    from gmv.data.edit import parse_additions, parse_subset

    parse_additions(plain(cfg.data.get("addition")), default_seed=0)  # a malformed data.addition or data.subset
    parse_subset(plain(cfg.data.get("subset")), default_seed=0)  # stops here
    if cfg.get("control"):
        from gmv.pipeline.controls import check_control

        check_control(cfg.control)
    t, g = cfg.train, cfg.generate
    if not isinstance(t.max_iterations, int) or t.max_iterations < 1:
        raise GmvError(f"train.max_iterations must be an integer ≥ 1, got {t.max_iterations!r}")
    if t.checkpoint_every < 0 or t.sample_every < 0:
        raise GmvError("train.checkpoint_every and train.sample_every must be ≥ 0 (0 = off)")
    if not isinstance(g.m, int) or g.m < 1:
        raise GmvError(f"generate.m must be an integer ≥ 1, got {g.m!r}")
