#!/usr/bin/env bash
# Download IWSLT'14 German-English and write the prepared corpus that run_translation.py reads:
#
#   iwslt14.tokenized.de-en/{train,valid,test}.{de,en}   Moses-tokenized, lowercased, BPE ("@@ " markers)
#   iwslt14.tokenized.de-en/code                          the 10,000 BPE merges
#   iwslt14.tokenized.de-en/tmp/                          the tokenized text before BPE
#
# This is fairseq's examples/translation/prepare-iwslt14.sh (the recipe behind ASAM's and LETS's
# IWSLT'14 numbers, itself adapted from MIXER's prepareData.sh), step for step: Moses tokenizer,
# train pairs cleaned to 1..175 tokens with length ratio <= 1.5 (clean-corpus-n), lowercasing,
# every 23rd training pair held out as valid, the five TED dev/test sets concatenated as test,
# joint BPE with 10,000 merges learned on train (both languages) and applied to all splits.
#
# Needs: internet, git, perl, python3, wget. Usage (writes into the current folder):
#   bash translation/prepare_iwslt14.sh
#   python translation/run_translation.py --data_dir iwslt14.tokenized.de-en ...
# It is documented here and not run in CI (the project's machines have no internet).
set -euo pipefail

URL="${IWSLT14_URL:-http://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz}"  # the original wit3.fbk.eu link is gone
GZ=de-en.tgz
BPE_TOKENS=10000
src=de
tgt=en
lang=de-en
prep=iwslt14.tokenized.de-en
tmp=$prep/tmp
orig=orig

[ -d mosesdecoder ] || git clone --depth 1 https://github.com/moses-smt/mosesdecoder.git
[ -d subword-nmt ] || git clone --depth 1 https://github.com/rsennrich/subword-nmt.git
SCRIPTS=mosesdecoder/scripts
TOKENIZER=$SCRIPTS/tokenizer/tokenizer.perl
LC=$SCRIPTS/tokenizer/lowercase.perl
CLEAN=$SCRIPTS/training/clean-corpus-n.perl
BPEROOT=subword-nmt/subword_nmt

mkdir -p $orig $tmp $prep
echo "Downloading ${URL} ..."
[ -f $orig/$GZ ] || wget -O $orig/$GZ "$URL"
tar -C $orig -zxf $orig/$GZ

echo "pre-processing train data..."
for l in $src $tgt; do
    grep -v '<url>' $orig/$lang/train.tags.$lang.$l | \
    grep -v '<talkid>' | \
    grep -v '<keywords>' | \
    sed -e 's/<title>//g' -e 's/<\/title>//g' -e 's/<description>//g' -e 's/<\/description>//g' | \
    perl $TOKENIZER -threads 8 -l $l > $tmp/train.tags.$lang.tok.$l
done
perl $CLEAN -ratio 1.5 $tmp/train.tags.$lang.tok $src $tgt $tmp/train.tags.$lang.clean 1 175
for l in $src $tgt; do
    perl $LC < $tmp/train.tags.$lang.clean.$l > $tmp/train.tags.$lang.$l
done

echo "pre-processing valid/test data..."
for l in $src $tgt; do
    for o in $orig/$lang/IWSLT14.TED*.$l.xml; do
        fname=${o##*/}
        grep '<seg id' "$o" | \
            sed -e 's/<seg id="[0-9]*">\s*//g' -e 's/\s*<\/seg>\s*//g' -e "s/\’/\'/g" | \
            perl $TOKENIZER -threads 8 -l $l | \
            perl $LC > "$tmp/${fname%.*}"
    done
done

echo "creating train, valid, test..."
for l in $src $tgt; do
    awk '{if (NR%23 == 0) print $0; }' $tmp/train.tags.$lang.$l > $tmp/valid.$l
    awk '{if (NR%23 != 0) print $0; }' $tmp/train.tags.$lang.$l > $tmp/train.$l
    cat $tmp/IWSLT14.TED.dev2010.$lang.$l \
        $tmp/IWSLT14.TEDX.dev2012.$lang.$l \
        $tmp/IWSLT14.TED.tst2010.$lang.$l \
        $tmp/IWSLT14.TED.tst2011.$lang.$l \
        $tmp/IWSLT14.TED.tst2012.$lang.$l \
        > $tmp/test.$l
done

echo "learn_bpe.py on train.$src + train.$tgt ..."
cat $tmp/train.$src $tmp/train.$tgt > $tmp/train.en-de
python3 $BPEROOT/learn_bpe.py -s $BPE_TOKENS < $tmp/train.en-de > $prep/code
for L in $src $tgt; do
    for f in train.$L valid.$L test.$L; do
        echo "apply_bpe.py to $f ..."
        python3 $BPEROOT/apply_bpe.py -c $prep/code < $tmp/$f > $prep/$f
    done
done
wc -l $prep/{train,valid,test}.{$src,$tgt}
