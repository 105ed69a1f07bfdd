// Greedy ids of llama.cpp on a prompt, with the top-2 logit margin of every step: the reference
// maker for tests/data/gemma3 (built against the peer's static libraries; see
// tests/data/gemma3/make-reference.py). Settings as `llama-completion ... -ctk f32 -ctv f32
// --no-repack --temp 0`: f32 KV cache, no weight repacking, the default context and batch.
#include "llama.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char ** argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s MODEL PROMPT N_NEW [THREADS [LOGITS_OUT]]\n", argv[0]); return 2; }
    const int n_new = atoi(argv[3]);
    const int threads = argc > 4 ? atoi(argv[4]) : 1;
    // Optionally the logits of every step, little-endian f32 [steps][vocab].
    FILE * dump = argc > 5 ? fopen(argv[5], "wb") : nullptr;
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::vector<llama_token> ids(strlen(argv[2]) + 8);
    int n = llama_tokenize(vocab, argv[2], strlen(argv[2]), ids.data(), ids.size(), true, true);
    ids.resize(n);
    printf("{\"prompt_ids\": [");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("], \"new_ids\": [");
    std::vector<float> margins;
    llama_batch batch = llama_batch_get_one(ids.data(), n);
    llama_token tok = 0;
    for (int step = 0; step < n_new; step++) {
        if (llama_decode(ctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
        const float * logits = llama_get_logits_ith(ctx, -1);
        if (dump) fwrite(logits, sizeof(float), n_vocab, dump);
        int best = 0; float b1 = logits[0], b2 = -1e30f;
        for (int v = 1; v < n_vocab; v++) {
            if (logits[v] > b1) { b2 = b1; b1 = logits[v]; best = v; }
            else if (logits[v] > b2) { b2 = logits[v]; }
        }
        tok = best;
        printf("%s%d", step ? ", " : "", tok);
        margins.push_back(b1 - b2);
        if (llama_vocab_is_eog(vocab, tok)) break;
        batch = llama_batch_get_one(&tok, 1);
    }
    printf("], \"margins\": [");
    for (size_t i = 0; i < margins.size(); i++) printf("%s%.4f", i ? ", " : "", margins[i]);
    printf("]}\n");
    if (dump) fclose(dump);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
