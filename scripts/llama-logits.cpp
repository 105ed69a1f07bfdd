// Logits of llama.cpp at chosen positions of a prompt and of its greedy continuation, as JSON:
// the reference maker for tests/data/gemma3/logits-*.json (built against the peer's static
// libraries like scripts/llama-greedy.cpp; see tests/data/gemma3/make-logits.sh). Settings as
// `llama-completion ... -ctk f32 -ctv f32 --no-repack --temp 0`: f32 KV cache, no weight
// repacking, the default batch; the prompt is decoded as one batch (llama.cpp splits it into
// micro-batches of its default size).
//
// usage: llama-logits MODEL PROMPT|@FILE N_NEW THREADS FROM EVERY N_CTX
// Position p (of the prompt or of the greedy continuation, whose token is fed at p) is dumped
// when p >= FROM and (p - FROM) % EVERY == 0, and so is the prompt's last position. For each:
// the argmax, the top 8 (id, logit) and the logits of the ids 0, 2039, 4078, ... (every
// 2039th id, 129 of Gemma 3's 262144).
#include "llama.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static void dump(const float * logits, int n_vocab, int pos, bool first) {
    std::vector<int> order(n_vocab);
    for (int i = 0; i < n_vocab; i++) order[i] = i;
    std::partial_sort(order.begin(), order.begin() + 8, order.end(),
                      [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    printf("%s\n  {\"pos\": %d, \"argmax\": %d, \"top\": [", first ? "" : ",", pos, order[0]);
    for (int k = 0; k < 8; k++) printf("%s[%d, %.6f]", k ? ", " : "", order[k], logits[order[k]]);
    printf("], \"sample\": [");
    for (int v = 0, k = 0; v < n_vocab; v += 2039, k++) printf("%s%.6f", k ? ", " : "", logits[v]);
    printf("]}");
}

int main(int argc, char ** argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: %s MODEL PROMPT|@FILE N_NEW THREADS FROM EVERY N_CTX\n", argv[0]);
        return 2;
    }
    std::string prompt = argv[2];
    if (!prompt.empty() && prompt[0] == '@') {
        std::ifstream f(prompt.substr(1), std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        prompt = ss.str();
    }
    const int n_new = atoi(argv[3]), threads = atoi(argv[4]), from = atoi(argv[5]), every = atoi(argv[6]);
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.use_extra_bufts = false;  // --no-repack
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.n_ctx = atoi(argv[7]);
    cp.n_batch = cp.n_ctx;
    llama_context * ctx = llama_init_from_model(model, cp);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::vector<llama_token> ids(prompt.size() + 8);
    int n = llama_tokenize(vocab, prompt.c_str(), prompt.size(), ids.data(), ids.size(), true, true);
    ids.resize(n);
    printf("{\"prompt_ids\": [");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("],\n \"positions\": [");
    llama_batch batch = llama_batch_init(n, 0, 1);
    std::vector<int> wanted;
    for (int i = 0; i < n; i++) {
        const bool want = i == n - 1 || (i >= from && (i - from) % every == 0);
        batch.token[i] = ids[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = want;
        if (want) wanted.push_back(i);
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
    bool first = true;
    for (int i : wanted) {
        dump(llama_get_logits_ith(ctx, i), n_vocab, i, first);
        first = false;
    }
    std::vector<llama_token> out;
    llama_token tok = 0;
    const float * last = llama_get_logits_ith(ctx, n - 1);
    for (int step = 0; step < n_new; step++) {
        tok = std::max_element(last, last + n_vocab) - last;
        out.push_back(tok);
        if (step + 1 == n_new || llama_vocab_is_eog(vocab, tok)) break;
        llama_batch one = llama_batch_get_one(&tok, 1);
        if (llama_decode(ctx, one)) { fprintf(stderr, "decode failed\n"); return 1; }
        last = llama_get_logits_ith(ctx, -1);
        const int p = n + step;
        if (p >= from && (p - from) % every == 0) dump(last, n_vocab, p, false);
    }
    printf("],\n \"new_ids\": [");
    for (size_t i = 0; i < out.size(); i++) printf("%s%d", i ? ", " : "", out[i]);
    printf("]}\n");
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
