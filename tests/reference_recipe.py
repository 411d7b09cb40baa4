"""The oracle for the pretraining recipe's statistics: how google-research/bert's
`create_pretraining_data.py` (`create_instances_from_document`, `truncate_seq_pair` and the
masked-LM count of `create_masked_lm_predictions`) packs a tokenised corpus into examples,
restated here step by step, independent of minibert's code.

It returns, per example: (length with [CLS] and two [SEP]s, is-random-next, number of predictions).
"""


def reference_examples(documents, max_seq_length, short_seq_prob, rng, masked_lm_prob=0.15,
                       max_predictions_per_seq=20):
    out = []
    for doc_index, document in enumerate(documents):
        max_tokens = max_seq_length - 3
        target = rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens
        chunk, length, i = [], 0, 0
        while i < len(document):
            chunk.append(document[i])
            length += len(document[i])
            if i == len(document) - 1 or length >= target:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = [t for sentence in chunk[:a_end] for t in sentence]
                b = []
                is_random = len(chunk) == 1 or rng.random() < 0.5       # one sentence: always random
                if is_random:
                    for _ in range(10):                                  # another document, 10 tries
                        other = rng.randint(0, len(documents) - 1)
                        if other != doc_index:
                            break
                    sentences = documents[other]
                    for sentence in sentences[rng.randint(0, len(sentences) - 1):]:
                        b.extend(sentence)
                        if len(b) >= target - len(a):
                            break
                    i -= len(chunk) - a_end                              # unused sentences back
                else:
                    b = [t for sentence in chunk[a_end:] for t in sentence]
                while len(a) + len(b) > max_tokens:                      # truncate the longer one
                    longer = a if len(a) > len(b) else b
                    if rng.random() < 0.5:
                        del longer[0]
                    else:
                        longer.pop()
                n = len(a) + len(b) + 3
                out.append((n, is_random, min(max_predictions_per_seq, max(1, int(round(n * masked_lm_prob))))))
                chunk, length = [], 0
            i += 1
    return out
