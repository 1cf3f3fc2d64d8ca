"""Base of every result model: strict, immutable, and able to leave out absent sections."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class ResultModel(BaseModel):
    """A typed part of result.json.

    Fields named in `OMIT_WHEN_NONE` are optional sections (the local fleet of a cloud
    deployment, planning when it was not run): they are left out of the JSON when absent
    rather than written as null, so result.json shows only what the run has.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_absent_sections(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self.OMIT_WHEN_NONE:
                if data.get(key, 0) is None:
                    del data[key]
        return data
