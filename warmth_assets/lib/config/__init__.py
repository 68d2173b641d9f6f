"""The study's configuration: `dagster_project.toml` (or the file named by WARMTH_CONFIG), typed.

Every section forbids unknown keys, so a typo fails at load with the file, the key and the reason
instead of silently falling back to a default. One module per concern; every public name is
re-exported here, so `from warmth_assets.lib.config import X` is the one import callers use:

  base        ConfigError (UnknownModel), Section, `setting` / `shared_values` (resource fields declared by their setting)
  corpus      [data], [corpus], [corpus.detoxify], [rewrite]
  finetune    [finetune], [finetune.lora], [finetune.openai]
  evaluation  [sociot], [generation] (sampling per role), [evaluation]
  judging     [judge], [analysis]
  operations  [llm], [serving], [compute], [operations] (with its watch rules)
  warehouse   [warehouse] (the DuckDB file or a DuckLake)
  study       [project], [[models]], StudySettings (rules across sections)
  loading     load_settings, load_config, config_path
"""

from warmth_assets.lib.config.base import ConfigError, Section, UnknownModel, setting, shared_values
from warmth_assets.lib.config.corpus import CorpusSettings, DataSettings, DetoxifySettings, RewriteSettings
from warmth_assets.lib.config.evaluation import (EvaluationSettings, GenerationSettings, Sampling, SocioTSettings,
                                                 WrongAnswerSampling)
from warmth_assets.lib.config.finetune import FinetuneSettings, LoraSettings, OpenAIFinetuneSettings
from warmth_assets.lib.config.judging import AnalysisSettings, JudgeSettings
from warmth_assets.lib.config.loading import config_path, load_config, load_settings
from warmth_assets.lib.config.operations import (ComputeSettings, LLMSettings, OperationsSettings, ServingSettings,
                                                 WatchRule)
from warmth_assets.lib.config.study import ModelSettings, ProjectSettings, StudySettings
from warmth_assets.lib.config.warehouse import WarehouseSettings

__all__ = [
    "AnalysisSettings", "WarehouseSettings", "ComputeSettings", "ConfigError", "UnknownModel", "CorpusSettings", "DataSettings", "DetoxifySettings",
    "EvaluationSettings", "FinetuneSettings", "GenerationSettings", "JudgeSettings", "LLMSettings", "LoraSettings",
    "ModelSettings", "OpenAIFinetuneSettings", "OperationsSettings", "ProjectSettings", "RewriteSettings",
    "Sampling", "Section", "ServingSettings", "SocioTSettings", "StudySettings", "WatchRule", "WrongAnswerSampling",
    "config_path", "load_config", "load_settings", "setting", "shared_values",
]
