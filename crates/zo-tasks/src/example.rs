//! One data row of a task, validated.

use crate::error::RowErrorKind;
use crate::fields::Obj;
use crate::task::Task;
use crate::tasks::copa::CopaRow;
use crate::tasks::drop::DropRow;
use crate::tasks::record::RecordRow;
use crate::tasks::rte::RteRow;
use crate::tasks::squad::SquadRow;
use crate::tasks::sst2::Sst2Row;
use crate::tasks::TemplateOut;

/// The task-specific fields of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExampleData {
    Sst2(Sst2Row),
    Rte(RteRow),
    Copa(CopaRow),
    Record(RecordRow),
    Squad(SquadRow),
    Drop(DropRow),
}

/// A validated row and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// 0-based row index within its split (HF row order; what MeZO's permutation indexes).
    pub row: usize,
    pub data: ExampleData,
}

impl Example {
    /// Validate one row (a JSON object with the HF export's field names) for `task`.
    pub fn from_json(
        task: Task,
        row: usize,
        value: &serde_json::Value,
    ) -> Result<Example, RowErrorKind> {
        let obj = value.as_object().ok_or_else(|| {
            RowErrorKind::NotAnObject(value.to_string().chars().take(40).collect())
        })?;
        Ok(Example {
            row,
            data: ExampleData::from_obj(task, obj)?,
        })
    }

    pub fn task(&self) -> Task {
        match self.data {
            ExampleData::Sst2(_) => Task::Sst2,
            ExampleData::Rte(_) => Task::Rte,
            ExampleData::Copa(_) => Task::Copa,
            ExampleData::Record(_) => Task::Record,
            ExampleData::Squad(_) => Task::Squad,
            ExampleData::Drop(_) => Task::Drop,
        }
    }

    pub(crate) fn template(&self) -> TemplateOut {
        match &self.data {
            ExampleData::Sst2(r) => r.template(),
            ExampleData::Rte(r) => r.template(),
            ExampleData::Copa(r) => r.template(),
            ExampleData::Record(r) => r.template(),
            ExampleData::Squad(r) => r.template(),
            ExampleData::Drop(r) => r.template(),
        }
    }
}

impl ExampleData {
    fn from_obj(task: Task, obj: &Obj) -> Result<ExampleData, RowErrorKind> {
        Ok(match task {
            Task::Sst2 => ExampleData::Sst2(Sst2Row::from_obj(obj)?),
            Task::Rte => ExampleData::Rte(RteRow::from_obj(obj)?),
            Task::Copa => ExampleData::Copa(CopaRow::from_obj(obj)?),
            Task::Record => ExampleData::Record(RecordRow::from_obj(obj)?),
            Task::Squad => ExampleData::Squad(SquadRow::from_obj(obj)?),
            Task::Drop => ExampleData::Drop(DropRow::from_obj(obj)?),
        })
    }
}
