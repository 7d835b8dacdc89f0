"""The LLM layer: everything that loads or serves a language model.

- loading.py: the one loader of causal LMs and tokenizers (HF directory, hub id or
  run-directory URI; dtype, device, pad-token fix, PEFT adapters), used by SFT, evaluation
  and the Hugging Face judge / abstraction calls;
- tiny.py: the tiny Llama factory (tokenizer trained on the env's words), for the tiny agent
  and the tiny judge alike;
- processors.py: the one builder of ``ray.data.llm`` processors (vLLM engine or HTTP) for the
  labeler's abstraction and judge calls.

It imports no stage package (labeling, sft, evaluation); they import it.
"""
