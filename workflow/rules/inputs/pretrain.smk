# Input and params functions of the pretrain stage (its rules: workflow/rules/pretrain.smk).


def pretrain_setting(name):
    """A params function for one esm.pretrain value (None when the config trains no model)."""

    def get(wildcards):
        pretrain = config["esm"]["pretrain"]
        return pretrain[name] if pretrain else None

    get.__name__ = f"pretrain_{name}"
    return get
