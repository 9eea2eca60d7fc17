//! `zo prompts --task T [--data FILE] [--tokenizer TOK]`: what the model is fed, one JSON line
//! per row: the rendered strings (MeZO's encode_prompt), and with a tokenizer the token ids,
//! option lengths and the option span decoded back to text.

use anyhow::anyhow;
use serde_json::json;
use zo_tasks::{encode_example, load_files, render, BadRowPolicy, EncodedEval, EncodedSeq, Task};

use super::{failed, usage, CmdResult};
use crate::cli::{Global, PromptsArgs};
use crate::pipeline::data::encoder;
use crate::settings::BosSetting;

pub fn run(_g: &Global, a: &PromptsArgs) -> CmdResult {
    let task: Task = a.task.parse().map_err(|e| usage(anyhow!("--task: {e}")))?;
    let file = match &a.data {
        Some(f) => f.clone(),
        None => task.source_dir().join("fixture.jsonl"),
    };
    let rows = load_files(task, std::slice::from_ref(&file), BadRowPolicy::Fail)
        .map_err(|e| usage(e.into()))?;
    let tok = match &a.tokenizer {
        Some(t) => {
            let m = crate::settings::ModelSettings {
                source: t.clone(),
                kind: crate::settings::ModelKind::Opt,
                dtype: crate::settings::DTypeSetting::F32,
                device: crate::settings::DeviceSetting::Cpu,
                tokenizer: t.clone(),
                bos: BosSetting::Mezo,
                init_seed: 0,
                compute: Default::default(),
                untie_embeddings: false,
            };
            Some(crate::pipeline::model::load_tokenizer(&m).map_err(usage)?)
        }
        None => None,
    };
    let limit = a.limit.unwrap_or(usize::MAX);
    for ex in rows.examples.iter().take(limit) {
        let r = render(ex).map_err(|e| usage(e.into()))?;
        let mut line = serde_json::to_value(&r).map_err(|e| failed(e.into()))?;
        if let Some(tok) = &tok {
            let enc = encoder(tok);
            let show = |s: &EncodedSeq| -> anyhow::Result<serde_json::Value> {
                let span = &s.ids[s.ids.len() - s.option_len..];
                Ok(
                    json!({"ids": s.ids, "option_len": s.option_len, "option_text": tok.decode(span, false, false)?, "truncated": s.truncated}),
                )
            };
            let encoded = match encode_example(&enc, &r, task.spec().max_length)
                .map_err(|e| usage(e.into()))?
            {
                EncodedEval::Candidates { options, .. } => {
                    json!({"candidates": options.iter().map(show).collect::<anyhow::Result<Vec<_>>>().map_err(failed)?})
                }
                EncodedEval::Generation { prompt, .. } => {
                    json!({"prompt": show(&prompt).map_err(failed)?})
                }
            };
            line["encoded"] = encoded;
        }
        println!("{line}");
    }
    Ok(())
}
