// Intermediate tensors of llama.cpp for one prompt, through its eval callback: the tracer that
// locates where Spool's numbers part from llama.cpp's (compare with Spool's `trace` feature,
// see tests/data/gemma3/README.md). Settings as scripts/llama-logits.cpp (f32 KV cache, no
// repacking, the prompt decoded as one batch, every position's logits).
//
// usage: llama-trace MODEL PROMPT|ids:A,B,... THREADS OUT.bin [BATCH]
// The first BATCH tokens of the prompt (default: all) are decoded as one batch, then the rest
// one token at a time (as generation feeds them); each decode's tensors follow the last's.
// OUT.bin holds, for every contiguous F32 node but views of the graph in evaluation order: u32 name
// length, the name, 4 x i64 ne, then ne0*ne1*ne2*ne3 f32 values (ggml's layout: ne0 fastest).
// Build it as llama-logits (see tests/data/gemma3/make-logits.py), naming this file.
#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static bool observe(struct ggml_tensor * t, bool ask, void * user) {
    // The cache's views are skipped: the written K/V rows are Kcur/Vcur.
    const bool wanted = t->type == GGML_TYPE_F32 && ggml_is_contiguous(t) && !strstr(t->name, "(view)");
    if (ask) return wanted;
    if (!wanted) return true;
    FILE * out = (FILE *) user;
    std::vector<float> data(ggml_nelements(t));
    ggml_backend_tensor_get(t, data.data(), 0, ggml_nbytes(t));
    const uint32_t len = strlen(t->name);
    fwrite(&len, 4, 1, out);
    fwrite(t->name, 1, len, out);
    for (int i = 0; i < 4; i++) {
        const int64_t ne = t->ne[i];
        fwrite(&ne, 8, 1, out);
    }
    fwrite(data.data(), 4, data.size(), out);
    return true;
}

int main(int argc, char ** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL PROMPT THREADS OUT.bin [BATCH]\n", argv[0]);
        return 2;
    }
    FILE * out = fopen(argv[4], "wb");
    if (!out) { fprintf(stderr, "cannot write %s\n", argv[4]); return 1; }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;  // --no-repack
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.n_threads = cp.n_threads_batch = atoi(argv[3]);
    cp.n_ctx = 256;
    cp.n_batch = cp.n_ctx;
    cp.cb_eval = observe;
    cp.cb_eval_user_data = out;
    llama_context * ctx = llama_init_from_model(model, cp);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string prompt = argv[2];
    std::vector<llama_token> ids(prompt.size() + 8);
    int n = 0;
    if (prompt.rfind("ids:", 0) == 0) {
        // Token ids, comma-separated, fed as given (no BOS added).
        for (size_t at = 4; at < prompt.size(); at = prompt.find(',', at) + 1) {
            ids[n++] = atoi(prompt.c_str() + at);
            if (prompt.find(',', at) == std::string::npos) break;
        }
    } else {
        n = llama_tokenize(vocab, prompt.c_str(), prompt.size(), ids.data(), ids.size(), true, true);
    }
    ids.resize(n);
    const int first = argc > 5 ? std::min(n, std::max(1, atoi(argv[5]))) : n;
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int start = 0; start < n;) {
        const int len = start == 0 ? first : 1;
        for (int i = 0; i < len; i++) {
            batch.token[i] = ids[start + i];
            batch.pos[i] = start + i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = true;
        }
        batch.n_tokens = len;
        if (llama_decode(ctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
        start += len;
    }
    fprintf(stderr, "prompt ids:");
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
    fclose(out);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
